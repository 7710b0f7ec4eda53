//! Receive-side cost of one CO: decrypt, verify, validate, store and a signed acknowledgement,
//! measured through the real HTTP endpoint of an importing gateway (ID) with messages secured
//! beforehand as KR would. Prints figures; asserts nothing about speed.
//!
//!     cargo bench --bench receive            # SQLite
//!     DATABASE_URL=postgres://... cargo bench --bench receive   # and PostgreSQL

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use coconnect::app::App;
use coconnect::dev::pair::{free_addr, write_pair, PairSpec};
use coconnect::message::{MessageHeader, Operation};
use coconnect::soap::messages::request_xml;
use coconnect::wssec::inbound::{process, InboundPolicy};
use coconnect::wssec::material::{Certificate, KeyPair};
use coconnect::wssec::outbound::{secure, OutboundMessage};
use coconnect::wssec::SoapVersion;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CO: &str = include_str!("../examples/co.xml");
const MESSAGES: usize = 400;

fn pair_of(dir: &std::path::Path, party: &str, purpose: &str) -> KeyPair {
    let f = coconnect::dev::pki::party_files(&dir.join("pki"), party);
    let (k, c) = match purpose {
        "signing" => (f.signing_key, f.signing_cert),
        _ => (f.encryption_key, f.encryption_cert),
    };
    KeyPair::from_pem(std::fs::read(k).unwrap(), Certificate::from_pem(&std::fs::read(c).unwrap()).unwrap()).unwrap()
}

fn co_xml(n: usize) -> String {
    let co = CO.replace("KRIDCEPA-2025-PUS-000417", &format!("BENCH-{n:06}"));
    coconnect::payload::to_xml(&coconnect::payload::parse_co(&co).unwrap()).unwrap()
}

fn stats(label: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{label}: n={} mean={:.2} ms p50={:.2} ms p95={:.2} ms p99={:.2} ms throughput={:.0}/s",
        samples.len(),
        ms(mean),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 95 / 100]),
        ms(samples[samples.len() * 99 / 100]),
        samples.len() as f64 / wall.as_secs_f64()
    );
}

async fn run(db_label: &str, database_url: impl Fn(&std::path::Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let addrs = [(free_addr().unwrap(), free_addr().unwrap()), (free_addr().unwrap(), free_addr().unwrap())];
    let urls = [database_url(&dir.path().join("kr")), database_url(&dir.path().join("id"))];
    let [_kr, id] = write_pair(&PairSpec {
        dir: dir.path(),
        parties: ["KR", "ID"],
        addrs,
        database_urls: urls,
        profile: "sign-encrypt",
        tls: false,
    })
    .unwrap();
    let app = App::start(coconnect::config::load(&id.config).unwrap()).await.unwrap();
    let signer = pair_of(dir.path(), "KR", "signing");
    let recipient = pair_of(dir.path(), "ID", "encryption");

    // Secure everything first: sender-side cost is not part of the receive figure.
    let t = Instant::now();
    let wires: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|n| {
            let body = request_xml(
                Operation::SendCo,
                &MessageHeader::new("KR", "ID", uuid::Uuid::new_v4(), Utc::now()),
                &co_xml(n),
            );
            secure(&OutboundMessage {
                version: SoapVersion::V11,
                body_xml: &body,
                signer: &signer,
                encrypt_for: Some(&recipient.certificate),
                profile: &coconnect::wssec::Profile::strict(true).outbound,
                addressing: None,
                now: Utc::now(),
                ttl: chrono::Duration::minutes(30),
            })
            .unwrap()
        })
        .collect();
    let sign_encrypt = t.elapsed() / MESSAGES as u32;
    println!(
        "[{db_label}] message size {} bytes; sender sign+encrypt {:.2} ms/message (one thread)",
        wires[0].len(),
        sign_encrypt.as_secs_f64() * 1000.0
    );

    // The WS-Security part alone (decrypt + verify), one thread.
    let trust = coconnect::wssec::trust::PartnerTrust::new(vec![signer.certificate.clone()], &[], None).unwrap();
    let t = Instant::now();
    for w in wires.iter().take(200) {
        process(
            w,
            &InboundPolicy {
                limits: Default::default(),
                decryption: Some(&recipient),
                profile: coconnect::wssec::Profile::strict(true).inbound,
                trust: &trust,
                now: Utc::now(),
                clock_skew: chrono::Duration::seconds(60),
                max_ttl: chrono::Duration::hours(1),
                require_fresh_timestamp: true,
                replay_retention: chrono::Duration::days(7),
            },
        )
        .unwrap();
    }
    println!(
        "[{db_label}] decrypt+verify alone: {:.2} ms/message (one thread)",
        t.elapsed().as_secs_f64() * 1000.0 / 200.0
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{}/soap/v1", id.soap_addr);
    let auth =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("KR:{}", id.inbound_password)));
    let post = move |wire: Vec<u8>| {
        let req = hyper::Request::post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(Full::new(Bytes::from(wire)))
            .unwrap();
        let client = client.clone();
        async move {
            let t = Instant::now();
            let resp = client.request(req).await.unwrap();
            let ok = resp.status() == 200;
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(ok && body.windows(8).any(|w| w == b"Accepted"), "{}", String::from_utf8_lossy(&body));
            t.elapsed()
        }
    };
    let (sequential, concurrent) = wires.split_at(MESSAGES / 2);
    // Warm-up: the first request pays for key caches and the credential check.
    let t = Instant::now();
    let mut samples = Vec::new();
    for w in sequential {
        samples.push(post(w.clone()).await);
    }
    stats(
        &format!(
            "[{db_label}] receive one CO end to end, sequential (HTTP, decrypt, verify, validate, store, signed ack)"
        ),
        samples,
        t.elapsed(),
    );

    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in concurrent.chunks(concurrent.len() / 4) {
        let chunk = chunk.to_vec();
        let post = post.clone();
        tasks.spawn(async move {
            let mut s = Vec::new();
            for w in chunk {
                s.push(post(w).await);
            }
            s
        });
    }
    let mut samples = Vec::new();
    while let Some(s) = tasks.join_next().await {
        samples.extend(s.unwrap());
    }
    stats(&format!("[{db_label}] receive, 4 concurrent clients"), samples, t.elapsed());
    app.stop().await;
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("receive benchmark: run with `cargo bench --bench receive`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        run("sqlite", |p| format!("sqlite:{}.db", p.display())).await;
        if let Ok(base) = std::env::var("DATABASE_URL") {
            let mut urls = Vec::new();
            for _ in 0..2 {
                urls.push(coconnect::store::testdb::fresh_postgres(&base).await.unwrap());
            }
            let urls = std::sync::Mutex::new(urls);
            run("postgres", move |_| urls.lock().unwrap().pop().unwrap()).await;
        }
    });
}
