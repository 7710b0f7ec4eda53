//! Denial-of-service controls and the audit trail, on a running gateway: slow-loris, over-size
//! headers, a partner over its rate, repeated authentication failures, readiness, and
//! `coconnect audit verify` on an intact and on a tampered chain.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_oversize_headers_are_cut_off_while_a_partner_is_served() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure("requests_per_second = 1000.0", "requests_per_second = 1000.0\nheader_read_timeout_seconds = 1");
    p.id.start().await;
    // Twenty clients that never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(p.id.files.soap_addr).await.expect("connect");
        s.write_all(b"POST /soap/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
        slow.push(s);
    }
    // A well-behaved partner is served meanwhile.
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let request = c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), true, now());
    let started = Instant::now();
    let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, request).await;
    assert_eq!(status, 200, "{ack}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The slow ones are dropped after the header timeout.
    for mut s in slow {
        let mut buf = [0u8; 256];
        let n =
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let big =
        format!("POST /soap/v1 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(40 * 1024));
    let answer = raw_exchange(p.id.files.soap_addr, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_gets_429_and_failing_sources_are_slowed_down() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // One request, then one every two seconds: six in a row cannot all pass however slow the machine.
    p.id.configure("requests_per_second = 0.5\n");
    p.id.start().await;
    let pw = p.id.files.inbound_password.clone();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, body) = post_soap(&p.id.soap_url(), "KR", &pw, b"<x/>".to_vec()).await;
        if status == 429 {
            assert_eq!(first_code(&body), "MSG-RATE-LIMIT", "{body}");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    for _ in 0..5 {
        post_soap(&p.id.soap_url(), "KR", "wrong", b"<x/>".to_vec()).await;
    }
    let started = Instant::now();
    let (status, _) = post_soap(&p.id.soap_url(), "KR", "wrong", b"<x/>".to_vec()).await;
    assert_eq!(status, 401);
    assert!(started.elapsed() >= Duration::from_millis(500), "repeated failures must be slowed down");

    let ready = client()
        .request(
            hyper::Request::get(format!("http://{}/readyz", p.id.files.soap_addr))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}

fn audit_verify(config: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coconnect"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .output()
        .expect("run");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_on_the_intact_log_and_fails_when_a_record_is_changed_or_removed() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    post_soap(&p.id.soap_url(), "KR", "wrong", b"<x/>".to_vec()).await;
    post_soap(&p.id.soap_url(), "ZZ", "nope", b"<x/>".to_vec()).await;
    let unsigned = format!("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{}</soap:Body></soap:Envelope>", send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO));
    post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, unsigned.into_bytes()).await;
    assert_eq!(p.id.api("POST", "/api/v1/partners/KR/pause", "").await.0, 200);

    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM audit_log ORDER BY seq")
        .fetch_all(p.id.store().pool())
        .await
        .expect("kinds");
    assert_eq!(kinds, ["auth.failed", "auth.failed", "security.refused", "operator.action"]);
    let (ok, out) = audit_verify(&p.id.files.config);
    assert!(ok && out.contains("intact: 4 records"), "{out}");

    sqlx::query("UPDATE audit_log SET reason = 'all fine' WHERE seq = 3")
        .execute(p.id.store().pool())
        .await
        .expect("tamper");
    let (ok, out) = audit_verify(&p.id.files.config);
    assert!(!ok && out.contains("BROKEN at record 3"), "{out}");

    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(p.id.store().pool()).await.expect("remove");
    let (ok, out) = audit_verify(&p.id.files.config);
    assert!(!ok && out.contains("BROKEN"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_message_contents_and_keeps_the_evidence_and_the_audit_chain() {
    let mut p = pair("sign-encrypt", Db::Sqlite).await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    p.kr.stop().await;
    p.id.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coconnect"))
        .args(["purge", "--older-than-days", "0", "--config"])
        .arg(&p.id.files.config)
        .env("RUST_LOG", "error")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 certificates"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = coconnect::store::Store::connect_for_inspection(&p.id.files.database_url).await.expect("store");
    let co_xml: String =
        sqlx::query_scalar("SELECT co_xml FROM certificates").fetch_one(store.pool()).await.expect("co");
    assert_eq!(co_xml, "", "the CO's contents are gone");
    let (wire, digest): (Vec<u8>, String) = {
        let row = sqlx::query("SELECT wire, wire_sha256 FROM message_log WHERE kind = 'request'")
            .fetch_one(store.pool())
            .await
            .expect("log");
        (sqlx::Row::try_get(&row, "wire").expect("wire"), sqlx::Row::try_get(&row, "wire_sha256").expect("digest"))
    };
    assert!(wire.is_empty() && digest.len() == 64, "digest kept, bytes gone");
    let message_ids: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages").fetch_one(store.pool()).await.expect("ids");
    assert_eq!(message_ids, 1, "message IDs stay (idempotency, non-repudiation)");
    let (ok, out) = audit_verify(&p.id.files.config);
    assert!(ok, "{out}");
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM audit_log ORDER BY seq").fetch_all(store.pool()).await.expect("kinds");
    assert!(kinds.contains(&"retention.purge".to_owned()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_holds_the_only_slot_until_then() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure(
        "requests_per_second = 1000.0",
        "requests_per_second = 1000.0\nbody_read_timeout_seconds = 2\nmax_concurrent_requests = 1",
    );
    p.id.start().await;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("KR:{}", p.id.files.inbound_password),
    );
    // Headers complete, body promised but never sent.
    let head = format!("POST /soap/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<soap:Env");
    let stall = || async {
        let mut s = tokio::net::TcpStream::connect(p.id.files.soap_addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("write");
        s
    };
    let mut stalled = stall().await;
    // Meanwhile the only request slot is taken. A probe that gets there first is served and
    // frees the slot at once, and the stalled request may then have been refused as busy
    // itself: stall again until a probe finds the slot held.
    let deadline = Instant::now() + PATIENCE;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, busy) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, b"<x/>".to_vec()).await;
        if (status, first_code(&busy).as_str()) == (503, "GW-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled request never held the slot: {status} {busy}");
        let mut peek = [0u8; 1];
        if stalled.try_read(&mut peek).is_ok() {
            stalled = stall().await;
        }
    }
    // The stalled one is answered 408 when its body time is up.
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("MSG-READ-TIMEOUT"), "{answer}");
    // Answered by the 2 s body timer, not by some later cleanup.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stored(p.id.store()).await, (0, 0));
}
