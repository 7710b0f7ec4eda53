//! HTTP conventions and connection handling of both listeners: 405 with `Allow` for a known
//! path asked with the wrong method, `HEAD` wherever `GET`, case-insensitive `Basic`/`Bearer`,
//! `WWW-Authenticate` on every 401, the API's body timeout, the connection limit, and a
//! shutdown that a stalled client cannot hold up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// One request over a fresh connection: status, headers, body.
async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> (u16, hyper::HeaderMap, Bytes) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = client().request(req).await.expect("call");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.expect("body").to_bytes())
}

fn header<'h>(headers: &'h hyper::HeaderMap, name: &str) -> &'h str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Sends `head` (a whole request head, `Connection: close`) on a raw connection and returns
/// everything the server sent until it closed: the head and the bytes after it.
async fn raw(addr: SocketAddr, head: &str) -> (String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await.expect("closed").expect("read");
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    (String::from_utf8_lossy(&out[..end]).into_owned(), out[end..].to_vec())
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_the_wrong_method_gets_405_with_allow_on_both_listeners() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let soap = p.id.files.soap_addr;
    let api = p.id.files.api_addr;
    let bearer = format!("Bearer {}", p.id.files.api_token);
    let auth = [("Authorization", bearer.as_str())];
    // (method, url, headers, expected status, expected Allow)
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        ("PUT", format!("http://{soap}/soap/v1"), &[], 405, "GET, HEAD, POST"),
        ("DELETE", format!("http://{soap}/soap/v1?wsdl"), &[], 405, "GET, HEAD, POST"),
        ("POST", format!("http://{soap}/healthz"), &[], 405, "GET, HEAD"),
        ("POST", format!("http://{soap}/readyz"), &[], 405, "GET, HEAD"),
        ("PUT", format!("http://{soap}/xsd/lpco-co.xsd"), &[], 405, "GET, HEAD"),
        ("POST", format!("http://{soap}/xsd/no-such.xsd"), &[], 404, ""),
        ("POST", format!("http://{soap}/nowhere"), &[], 404, ""),
        ("POST", format!("http://{api}/healthz"), &[], 405, "GET, HEAD"),
        ("DELETE", format!("http://{api}/readyz"), &[], 405, "GET, HEAD"),
        ("DELETE", format!("http://{api}/api/v1/certificates"), &auth, 405, "GET, HEAD, POST"),
        ("GET", format!("http://{api}/api/v1/declarations"), &auth, 405, "POST"),
        ("PUT", format!("http://{api}/api/v1/outbox"), &auth, 405, "GET, HEAD"),
        ("POST", format!("http://{api}/api/v1/certificates/some-id"), &auth, 405, "GET, HEAD"),
        ("GET", format!("http://{api}/api/v1/certificates/some-id/amendments"), &auth, 405, "POST"),
        ("GET", format!("http://{api}/api/v1/claims"), &auth, 405, "POST"),
        ("GET", format!("http://{api}/api/v1/partners/KR/pause"), &auth, 405, "POST"),
        ("DELETE", format!("http://{api}/api/v1/partners/KR/approved-exporters"), &auth, 405, "GET, HEAD, PUT"),
        ("GET", format!("http://{api}/api/v1/nothing-here"), &auth, 404, ""),
    ];
    for (method, url, headers, status, allow) in cases {
        let (got, h, body) = request(method, url, headers, "").await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(got, *status, "{method} {url}: {body}");
        assert_eq!(header(&h, "allow"), *allow, "{method} {url}");
        if url.contains("/api/v1/") && *status == 405 {
            assert!(body.contains("API-METHOD"), "{method} {url}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_like_get_without_a_body() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let soap = p.id.files.soap_addr;
    let api = p.id.files.api_addr;
    let bearer = format!("Authorization: Bearer {}\r\n", p.id.files.api_token);
    for (addr, path, extra) in [
        (soap, "/healthz", ""),
        (soap, "/soap/v1?wsdl", ""),
        (soap, "/xsd/lpco-co.xsd", ""),
        (api, "/healthz", ""),
        (api, "/readyz", ""),
        (api, "/api/v1/partners", bearer.as_str()),
    ] {
        let (get_head, get_body) =
            raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")).await;
        let (head_head, head_body) =
            raw(addr, &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")).await;
        assert!(get_head.starts_with("HTTP/1.1 200"), "GET {path}: {get_head}");
        assert_eq!(head_head.lines().next(), get_head.lines().next(), "HEAD {path}: {head_head}");
        assert!(!get_body.is_empty(), "GET {path} has a body");
        assert!(head_body.is_empty(), "HEAD {path} sent a body: {}", String::from_utf8_lossy(&head_body));
        assert_eq!(content_length(&head_head), Some(get_body.len()), "HEAD {path}: {head_head}");
        let content_type =
            |h: &str| h.lines().find(|l| l.to_ascii_lowercase().starts_with("content-type")).map(str::to_owned);
        assert_eq!(content_type(&head_head), content_type(&get_head), "HEAD {path}");
    }
    // HEAD of a resource that answers only POST is refused like GET.
    let (status, h, _) = request(
        "HEAD",
        &format!("http://{api}/api/v1/declarations"),
        &[("Authorization", &format!("Bearer {}", p.id.files.api_token))],
        "",
    )
    .await;
    assert_eq!((status, header(&h, "allow")), (405, "POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_schemes_are_case_insensitive_and_every_401_says_which_scheme() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let partners = format!("http://{}/api/v1/partners", p.id.files.api_addr);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {}", p.id.files.api_token);
        let (status, _, body) = request("GET", &partners, &[("Authorization", &value)], "").await;
        assert_eq!(status, 200, "{scheme}: {}", String::from_utf8_lossy(&body));
    }
    for refused in [String::new(), "Bearer wrong".to_owned(), format!("Basic {}", p.id.files.api_token)] {
        let headers: Vec<(&str, &str)> =
            if refused.is_empty() { vec![] } else { vec![("Authorization", refused.as_str())] };
        let (status, h, body) = request("GET", &partners, &headers, "").await;
        assert_eq!(status, 401, "{refused:?}");
        assert_eq!(header(&h, "www-authenticate"), "Bearer realm=\"coconnect\"", "{refused:?}");
        assert!(String::from_utf8_lossy(&body).contains("API-UNAUTHORIZED"));
    }

    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let password = &p.id.files.inbound_password;
    for scheme in ["basic", "BASIC"] {
        let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("KR:{password}"));
        let secured = c.secure(&send_co_body(uuid::Uuid::new_v4(), &co_with_reference(scheme)), true, now());
        let value = format!("{scheme} {auth}");
        let headers = [("Authorization", value.as_str()), ("Content-Type", "text/xml; charset=utf-8")];
        let (status, _, ack) = request("POST", &p.id.soap_url(), &headers, secured).await;
        assert_eq!(status, 200, "{scheme}: {}", String::from_utf8_lossy(&ack));
    }
    let soap = p.id.soap_url();
    let (status, h, _) = request("POST", &soap, &[("Content-Type", "text/xml")], "<x/>").await;
    assert_eq!((status, header(&h, "www-authenticate")), (401, "Basic realm=\"coconnect\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_api_body_gets_408_within_the_body_timeout() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure("requests_per_second = 1000.0", "requests_per_second = 1000.0\nbody_read_timeout_seconds = 1");
    p.id.start().await;
    let mut s = tokio::net::TcpStream::connect(p.id.files.api_addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/certificates?partner=KR HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n<?xml",
        p.id.files.api_token
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("answered before the test gave up")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("API-READ-TIMEOUT"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered by the 1 s body timer");
    assert_eq!(stored(p.id.store()).await, (0, 0));
}

/// Reads one response head from a kept-alive connection (the bodies here are short and sent
/// with it).
async fn read_answer(s: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_connections_the_next_connection_is_served_only_when_one_closes() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure("requests_per_second = 1000.0", "requests_per_second = 1000.0\nmax_connections = 2");
    p.id.start().await;
    let addr = p.id.files.api_addr;
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two kept-alive connections, each served once: both slots are taken.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(health).await.expect("write");
        let answer = read_answer(&mut s, PATIENCE).await.expect("served");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(s);
    }
    // The third waits in the backlog: not accepted, so neither answered nor closed.
    let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect (the kernel's backlog)");
    third.write_all(health).await.expect("write");
    assert_eq!(read_answer(&mut third, Duration::from_millis(1500)).await, None, "served over the limit");
    // A slot frees: the third is served.
    drop(held.remove(0));
    let answer = read_answer(&mut third, Duration::from_secs(5)).await.expect("served once a slot freed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_within_the_grace_period_despite_a_stalled_api_client() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // The body timer would end the stall after a minute: the grace period must end it first.
    p.id.reconfigure(
        "requests_per_second = 1000.0",
        "requests_per_second = 1000.0\nbody_read_timeout_seconds = 60\nshutdown_grace_seconds = 1",
    );
    p.id.start().await;
    let mut stalled = tokio::net::TcpStream::connect(p.id.files.api_addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/certificates?partner=KR HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n<?xml",
        p.id.files.api_token
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    // Let the request reach its handler (which is then waiting for the body).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), p.id.stop()).await.expect("stop returned");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "the grace period was waited: {took:?}");
    assert!(took < Duration::from_secs(5), "stopped after the 1 s grace period: {took:?}");
    // The stalled connection was cut, not answered.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await.expect("closed");
    assert!(n.is_err() || rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_out_of_range_are_refused_naming_the_key() {
    let p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    for (setting, key) in [
        ("max_connections = 0", "limits.max_connections"),
        ("max_connections = 2000000", "limits.max_connections"),
        ("shutdown_grace_seconds = 3601", "limits.shutdown_grace_seconds"),
    ] {
        let original = std::fs::read_to_string(&p.id.files.config).expect("config");
        p.id.reconfigure("requests_per_second = 1000.0", &format!("requests_per_second = 1000.0\n{setting}"));
        let err = coconnect::config::load(&p.id.files.config).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(key), "{setting}: {err:?}");
        std::fs::write(&p.id.files.config, original).expect("restore");
    }
    assert!(coconnect::config::load(&p.id.files.config).is_ok());
}
