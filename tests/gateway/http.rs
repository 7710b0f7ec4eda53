//! HTTP conventions and connection handling of both listeners: 405 with `Allow` for a known
//! path asked with the wrong method, `HEAD` wherever `GET`, case-insensitive `Basic`/`Bearer`,
//! `WWW-Authenticate` on every 401, the API's body timeout, the connection limits (per listener,
//! per source, none for outsiders), the write timeout, and a shutdown that refuses new clients,
//! that a stalled client cannot hold up, and that finishes the SOAP requests being processed.

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
        ("max_connections_per_source = 0", "limits.max_connections_per_source"),
        ("write_timeout_seconds = 0", "limits.write_timeout_seconds"),
    ] {
        let original = std::fs::read_to_string(&p.id.files.config).expect("config");
        p.id.reconfigure("requests_per_second = 1000.0", &format!("requests_per_second = 1000.0\n{setting}"));
        let err = coconnect::config::load(&p.id.files.config).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(key), "{setting}: {err:?}");
        std::fs::write(&p.id.files.config, original).expect("restore");
    }
    assert!(coconnect::config::load(&p.id.files.config).is_ok());
}

/// True if the server closed `s` without answering within `wait` (EOF or a reset).
async fn closed_unanswered(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    matches!(tokio::time::timeout(wait, s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

/// A kept-alive connection from `source`, served `GET /healthz` once.
async fn served_from(source: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let mut s = connect_from(source, addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let answer = read_answer(&mut s, PATIENCE).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "from {source}: {answer:?}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_outside_every_allow_list_is_closed_at_accept_and_takes_no_slot() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // KR may call from 127.0.0.1 only; one connection slot; a slow-loris would keep its
    // connection for 30 s.
    p.id.reconfigure("allowed_networks = [\"127.0.0.0/8\", \"::1/128\"]", "allowed_networks = [\"127.0.0.1/32\"]");
    p.id.reconfigure(
        "requests_per_second = 1000.0",
        "requests_per_second = 1000.0\nmax_connections = 1\nheader_read_timeout_seconds = 30",
    );
    p.id.start().await;
    let soap = p.id.files.soap_addr;
    // Outsiders, who say nothing: each is closed at once.
    let mut outsiders = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.2", soap).await;
        let started = Instant::now();
        assert!(closed_unanswered(&mut s, Duration::from_secs(5)).await, "an outsider's connection was kept");
        assert!(started.elapsed() < Duration::from_secs(5));
        outsiders.push(s);
    }
    // The only slot is free for the partner meanwhile.
    let started = Instant::now();
    let partner = served_from("127.0.0.1", soap).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the partner waited for an outsider's slot");
    drop(partner);
    // The domestic API has no allow-list: it is not filtered.
    let api = served_from("127.0.0.2", p.id.files.api_addr).await;
    drop((api, outsiders));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_gets_at_most_max_connections_per_source_but_a_trusted_proxy_is_not_counted() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure("requests_per_second = 1000.0", "requests_per_second = 1000.0\nmax_connections_per_source = 2");
    p.id.configure("\n[proxy]\ntrusted = [\"127.0.0.4/32\"]\n");
    p.id.start().await;
    let soap = p.id.files.soap_addr;
    let mut held = vec![served_from("127.0.0.1", soap).await, served_from("127.0.0.1", soap).await];
    let mut third = connect_from("127.0.0.1", soap).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    assert!(closed_unanswered(&mut third, Duration::from_secs(5)).await, "a third connection from one source");
    // Other sources are not affected.
    let other = served_from("127.0.0.3", soap).await;
    // A closed connection frees its source's count (the server notices the close first).
    drop(held.remove(0));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = connect_from("127.0.0.1", soap).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        if let Some(answer) = read_answer(&mut s, Duration::from_secs(2)).await {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            held.push(s);
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's count was never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A trusted proxy carries many clients: more than two connections from it are served.
    let mut proxied = Vec::new();
    for _ in 0..4 {
        proxied.push(served_from("127.0.0.4", soap).await);
    }
    drop((held, other, proxied));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_responses_is_cut_after_the_write_timeout() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // One slot, so that the next client is served only once the stalled one is cut; the
    // header timer is long, so it is not the one that cuts it.
    p.id.reconfigure(
        "requests_per_second = 1000.0",
        "requests_per_second = 1000.0\nmax_connections = 1\nwrite_timeout_seconds = 1\nheader_read_timeout_seconds = 60",
    );
    p.id.start().await;
    let soap = p.id.files.soap_addr;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small window: the server's send buffer fills after a few responses.
    socket.set_recv_buffer_size(4096).expect("buffer");
    let mut greedy = socket.connect(soap).await.expect("connect");
    // About 35 MB of schemas asked for, far more than the sockets' buffers hold.
    const ASKED: usize = 1000;
    let requests = "GET /xsd/lpco-co.xsd HTTP/1.1\r\nHost: x\r\n\r\n".repeat(ASKED);
    // The server stops reading when it cannot write: the requests may not all go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), greedy.write_all(requests.as_bytes())).await;
    let started = Instant::now();
    let mut next = tokio::net::TcpStream::connect(soap).await.expect("connect");
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let answer = read_answer(&mut next, Duration::from_secs(20)).await;
    assert!(answer.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 200")), "never served: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "served {:?} later", started.elapsed());
    // The greedy client was cut: it gets part of its answers, then the end.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, greedy.read_to_end(&mut got)).await.expect("closed");
    let answers = String::from_utf8_lossy(&got).matches("HTTP/1.1 200").count();
    assert!(answers < ASKED, "all {answers} answers were sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stop_begins_new_connections_are_refused_at_once() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure(
        "requests_per_second = 1000.0",
        "requests_per_second = 1000.0\nbody_read_timeout_seconds = 60\nshutdown_grace_seconds = 3",
    );
    p.id.start().await;
    let (soap, api) = (p.id.files.soap_addr, p.id.files.api_addr);
    // A stalled client keeps each listener in its grace period: a body never sent to the API...
    let mut stalled = tokio::net::TcpStream::connect(api).await.expect("connect");
    let head = format!(
        "POST /api/v1/certificates?partner=KR HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n<?xml",
        p.id.files.api_token
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    // ...and a slow-loris on the SOAP listener (its header timer is longer than the grace period).
    let mut slow = tokio::net::TcpStream::connect(soap).await.expect("connect");
    slow.write_all(b"POST /soap/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut refused = Vec::new();
        for addr in [api, soap] {
            let started = Instant::now();
            let connected = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
            let refused_now = matches!(&connected, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused);
            refused.push((addr, refused_now, started.elapsed()));
        }
        refused
    };
    let started = Instant::now();
    let ((), refused) = tokio::join!(p.id.stop(), probe);
    assert!(started.elapsed() >= Duration::from_secs(2), "the probe ran during the grace period");
    for (addr, refused_now, took) in refused {
        assert!(refused_now, "{addr}: a new connection was not refused during the drain");
        assert!(took < Duration::from_secs(1), "{addr}: refused after {took:?}");
    }
}

/// Rows of the replay cache and of received messages.
async fn replay_keys_and_receipts(store: &coconnect::store::Store) -> (i64, i64) {
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .expect("count")
    };
    (count("replay_cache").await, count("inbound_messages").await)
}

/// Whether a transaction storing a receipt is under way: PostgreSQL says what its backends are
/// running; on SQLite the write lock is held (without waiting for it) for 200 ms on end, which
/// none of the gateway's short background writes does.
async fn receipt_in_progress(url: &str, db: Db) -> bool {
    use sqlx::Connection;
    match db {
        Db::Postgres => {
            let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
            // The receipt's own statement, or the one statement of a received CO's whole receipt.
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO inbound_messages%'")
                .fetch_one(&mut conn)
                .await
                .expect("pg_stat_activity");
            n > 0
        }
        Db::Sqlite => {
            for _ in 0..5 {
                let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
                sqlx::query("PRAGMA busy_timeout = 0").execute(&mut conn).await.expect("busy_timeout");
                if sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.is_ok() {
                    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            true
        }
    }
}

/// Makes storing a receipt take seconds (a trigger on `inbound_messages`), so that a request
/// is reliably in flight between its replay key and its receipt.
async fn slow_down_receipts(store: &coconnect::store::Store, db: Db) {
    let statements: &[&str] = match db {
        // SQLite has no sleep: a trigger that counts a 400³-row cross join.
        Db::Sqlite => &[
            "CREATE TABLE slow_rows (n INTEGER)",
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 400) INSERT INTO slow_rows SELECT n FROM c",
            "CREATE TABLE slow_sink (n INTEGER)",
            "CREATE TRIGGER slow_receipt BEFORE INSERT ON inbound_messages BEGIN INSERT INTO slow_sink SELECT count(*) FROM slow_rows a, slow_rows b, slow_rows c; END",
        ],
        Db::Postgres => &[
            "CREATE FUNCTION slow_receipt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$",
            "CREATE TRIGGER slow_receipt BEFORE INSERT ON inbound_messages FOR EACH ROW EXECUTE FUNCTION slow_receipt()",
        ],
    };
    for statement in statements {
        sqlx::query(statement).execute(store.pool()).await.expect(statement);
    }
}

/// A SOAP request whose body has been read is finished even when the shutdown grace (here
/// none) ends first: its receipt and the replay-cache entry of its signature are stored
/// together, and the partner's retry (its connection was cut) gets the original answer.
async fn a_request_in_flight_when_the_grace_ends_is_finished_on(db: Db) {
    let mut p = pair_stopped("sign-encrypt", db).await;
    p.id.reconfigure("requests_per_second = 1000.0", "requests_per_second = 1000.0\nshutdown_grace_seconds = 0");
    p.id.start().await;
    let url = p.id.files.database_url.clone();
    // Its own connection, so that it can look while the gateway's is busy in the trigger.
    let inspect = coconnect::store::Store::connect_for_inspection(&url).await.expect("inspect");
    slow_down_receipts(&inspect, db).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let body = send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO);
    let request = c.secure(&body, true, now());
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("KR:{}", p.id.files.inbound_password),
    );
    let mut s = tokio::net::TcpStream::connect(p.id.files.soap_addr).await.expect("connect");
    let head = format!(
        "POST /soap/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        request.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&request).await.expect("body");
    // It is verified and inside the receipt's transaction (held up by the trigger): its
    // signature and its receipt are written there together, so nothing of it is visible yet.
    let deadline = Instant::now() + PATIENCE;
    while !receipt_in_progress(&url, db).await {
        assert!(Instant::now() < deadline, "the request never reached its receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(replay_keys_and_receipts(&inspect).await, (0, 0), "in flight when the stop begins");
    tokio::time::timeout(PATIENCE, p.id.stop()).await.expect("stopped");
    assert_eq!(replay_keys_and_receipts(&inspect).await, (1, 1), "the receipt and its replay key, together");
    // The partner, whose connection was cut, sends the message again (signed anew): the
    // acknowledgement of the one that was stored.
    for statement in ["DROP TRIGGER slow_receipt", "DROP TRIGGER slow_receipt ON inbound_messages"] {
        let _ = sqlx::query(statement).execute(inspect.pool()).await;
    }
    p.id.start().await;
    let retry = c.secure(&body, true, now());
    let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, retry).await;
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("Accepted"), "{ack}");
    assert_eq!(replay_keys_and_receipts(p.id.store()).await, (2, 1), "one receipt, for both copies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_grace_ends_is_finished_sqlite() {
    a_request_in_flight_when_the_grace_ends_is_finished_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_grace_ends_is_finished_postgres() {
    if coconnect::store::testdb::postgres_or_skip("a_request_in_flight_when_the_grace_ends_is_finished_postgres", true)
        .is_none()
    {
        return;
    }
    a_request_in_flight_when_the_grace_ends_is_finished_on(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_bodies_up_to_the_message_limit_reach_their_handler_and_larger_ones_get_api_too_large() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    // A 3 MiB CO (over axum's 2 MiB default, under the 4 MiB `max_message_bytes`): it reaches
    // the validator, which refuses the over-long statement with its own code.
    let long = "x".repeat(3 * 1024 * 1024);
    let big = EXAMPLE_CO.replacen("<StatementDescription>", &format!("<StatementDescription>{long}"), 1);
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", &big).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"].as_array().is_some_and(|e| e.iter().any(|e| e["code"] == "CO-LENGTH")), "{body}");
    // The same through a JSON route (an amendment carries a whole CO).
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let amendment = serde_json::json!({"reason": "big", "replacement": big}).to_string();
    let (status, body) = p.kr.api("POST", &format!("/api/v1/certificates/{cert}/amendments"), &amendment).await;
    assert_eq!(status, 422, "{body}");
    // Over the limit: refused unread (the declared length is enough), as an ApiError.
    let mut tcp = tokio::net::TcpStream::connect(p.kr.files.api_addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/certificates?partner=ID HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        p.kr.files.api_token,
        4 * 1024 * 1024 + 1
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, tcp.read(&mut answer)).await.expect("answered").expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"API-TOO-LARGE\"") && answer.contains("application/json"), "{answer}");
}
