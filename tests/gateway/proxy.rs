//! Behind a reverse proxy: a real nginx (Debian package) terminates TLS, verifies partners'
//! client certificates and forwards to the gateway; the gateway believes forwarded headers
//! from that proxy only.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// Starts nginx in front of `gateway` (TLS on `listen`, client certificates from `ca` required).
async fn start_nginx(dir: &std::path::Path, listen: SocketAddr, gateway: SocketAddr, pki: &std::path::Path) -> Nginx {
    let Some(binary) = nginx_binary() else { panic!("nginx is not installed: run scripts/install-deps.sh") };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let server = coconnect::dev_pki::party_files(pki, "ID");
    for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
        std::fs::create_dir_all(dir.join(d)).expect("nginx dir");
    }
    let conf = format!(
        // One process (no master/worker split): killing it leaves nothing behind holding our pipes.
        r#"daemon off;
master_process off;
worker_processes 1;
{user}
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {listen} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location = /soap/v1 {{
            proxy_pass http://{gateway};
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"#,
        user = if root { "user root;" } else { "" },
        dir = dir.display(),
        cert = server.tls_cert.display(),
        key = server.tls_key.display(),
        ca = pki.join("ca.cert.pem").display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child);
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nginx
}

fn escaped_pem(path: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(path).expect("pem");
    url::form_urlencoded::byte_serialize(pem.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_only_the_partners_certificate_and_addresses_get_in_and_forged_headers_are_ignored() {
    let (dir, [_kr, id]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let pki = dir.path().join("pki");
    let kr_tls = coconnect::dev_pki::party_files(&pki, "KR");
    let id_tls = coconnect::dev_pki::party_files(&pki, "ID");
    let mut id = Gateway { files: id, app: None };
    // KR may call only from 127.0.0.1 (as nginx reports it), with its own TLS certificate.
    id.reconfigure("allowed_networks = [\"127.0.0.0/8\", \"::1/128\"]", "allowed_networks = [\"127.0.0.1/32\"]");
    id.configure(&format!("tls_client_certs = [\"{}\"]\n\n[proxy]\ntrusted = [\"127.0.0.1/32\"]\nclient_cert_header = \"X-SSL-Client-Cert\"\n", kr_tls.tls_cert.display()));
    id.start().await;
    let listen = coconnect::config::dev_pair::free_addr().expect("port");
    let nginx_dir = dir.path().join("nginx");
    let _nginx = start_nginx(&nginx_dir, listen, id.files.soap_addr, &pki).await;
    let c = Crafter::new(&pki, "KR", "ID");
    let pw = id.files.inbound_password.clone();
    let ca = pki.join("ca.cert.pem");
    let message = || c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), true, now());

    // The partner, through nginx, with its client certificate: accepted.
    let ok = call(Call {
        to: listen,
        from: "127.0.0.1",
        tls: Some((&ca, Some((&kr_tls.tls_cert, &kr_tls.tls_key)))),
        headers: vec![],
        user: "KR",
        password: &pw,
        body: message(),
    })
    .await
    .expect("call");
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert!(ok.1.contains("Accepted"), "{}", ok.1);
    let after_ok = stored(id.store()).await;

    // Without a certificate nginx refuses (400), or the handshake fails.
    let none = call(Call {
        to: listen,
        from: "127.0.0.1",
        tls: Some((&ca, None)),
        headers: vec![],
        user: "KR",
        password: &pw,
        body: message(),
    })
    .await;
    assert!(none.as_ref().map(|r| r.0 == 400).unwrap_or(true), "{none:?}");
    // With another partner's certificate (same CA): the gateway refuses the borrowed identity.
    let other = call(Call {
        to: listen,
        from: "127.0.0.1",
        tls: Some((&ca, Some((&id_tls.tls_cert, &id_tls.tls_key)))),
        headers: vec![],
        user: "KR",
        password: &pw,
        body: message(),
    })
    .await
    .expect("call");
    assert_eq!((other.0, first_code(&other.1).as_str()), (403, "AUTH-TLS-MISMATCH"), "{}", other.1);
    // From a disallowed address (nginx reports 127.0.0.2): refused.
    let far = call(Call {
        to: listen,
        from: "127.0.0.2",
        tls: Some((&ca, Some((&kr_tls.tls_cert, &kr_tls.tls_key)))),
        headers: vec![],
        user: "KR",
        password: &pw,
        body: message(),
    })
    .await
    .expect("call");
    assert_eq!((far.0, first_code(&far.1).as_str()), (403, "AUTH-SOURCE-ADDRESS"), "{}", far.1);

    // Straight to the gateway from a non-proxy address outside every allow-list, forging the
    // proxy's headers: the connection is closed at accept, before a header is read.
    let forged = call(Call {
        to: id.files.soap_addr,
        from: "127.0.0.2",
        tls: None,
        headers: vec![
            ("X-Forwarded-For", "127.0.0.1".to_owned()),
            ("X-SSL-Client-Cert", escaped_pem(&kr_tls.tls_cert)),
        ],
        user: "KR",
        password: &pw,
        body: message(),
    })
    .await;
    assert!(forged.is_err(), "served: {forged:?}");
    assert_eq!(stored(id.store()).await, after_ok, "nothing stored for refused calls");
}
