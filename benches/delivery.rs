//! Sustained delivery rate between two gateways on this machine: KR's outbox is filled with
//! COs, then KR's workers push them to ID (signed, encrypted, verified, stored, signed ack,
//! ack verified and stored). Prints figures; asserts only that everything arrived once.
//!
//!     cargo bench --bench delivery                               # SQLite
//!     DATABASE_URL=postgres://... cargo bench --bench delivery   # and PostgreSQL

use std::time::{Duration, Instant};

use chrono::Utc;
use coconnect::app::App;
use coconnect::dev::pair::{free_addr, write_pair, PairSpec};
use coconnect::lifecycle::Direction;
use coconnect::message::{MessageHeader, Operation};
use coconnect::soap::messages::request_xml;
use coconnect::store::certificates::NewCertificate;
use coconnect::store::{outbox, Store};

const CO: &str = include_str!("../examples/co.xml");
const COS: usize = 1000;

async fn run(label: &str, urls: [String; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let addrs = [(free_addr().unwrap(), free_addr().unwrap()), (free_addr().unwrap(), free_addr().unwrap())];
    let [kr, id] = write_pair(&PairSpec {
        dir: dir.path(),
        parties: ["KR", "ID"],
        addrs,
        database_urls: urls,
        profile: "sign-encrypt",
        tls: false,
    })
    .unwrap();
    // Fill KR's outbox directly (the domestic API is not what is measured).
    {
        let store = Store::connect(&kr.database_url).await.unwrap();
        for n in 0..COS {
            let reference = format!("RATE-{n:06}");
            let co = coconnect::payload::parse_co(&CO.replace("KRIDCEPA-2025-PUS-000417", &reference)).unwrap();
            let co_xml = coconnect::payload::to_xml(&co).unwrap();
            let message_id = uuid::Uuid::new_v4();
            let body = request_xml(Operation::SendCo, &MessageHeader::new("KR", "ID", message_id, Utc::now()), &co_xml);
            let new = NewCertificate {
                issuer: "KR",
                reference: &reference,
                direction: Direction::Outbound,
                partner: "ID",
                kind: coconnect::payload::DocumentKind::Co,
                replaces: None,
                reference_code: None,
                verification_flag: None,
                content_sha256: "bench",
                co_xml: &co_xml,
            };
            outbox::submit(&store, &new, "SendCO", &message_id.to_string(), &body, Utc::now()).await.unwrap();
        }
    }
    let id_app = App::start(coconnect::config::load(&id.config).unwrap()).await.unwrap();
    let started = Instant::now();
    let kr_app = App::start(coconnect::config::load(&kr.config).unwrap()).await.unwrap();
    loop {
        let delivered = outbox::list(&kr_app.state.store, Some("delivered"), None).await.unwrap().len();
        if delivered == COS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "only {delivered} delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    assert_eq!(coconnect::store::certificates::count(&id_app.state.store).await.unwrap(), COS as i64);
    println!(
        "[{label}] {COS} COs KR -> ID delivered and acknowledged in {:.2} s: {:.0} COs/s sustained ({} workers, rate limit {}/s)",
        elapsed.as_secs_f64(),
        COS as f64 / elapsed.as_secs_f64(),
        kr_app.state.settings.delivery.workers,
        kr_app.state.settings.partners["ID"].flush_rate_per_second
    );
    kr_app.stop().await;
    id_app.stop().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("delivery benchmark: run with `cargo bench --bench delivery`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = |n: &str| format!("sqlite:{}", dir.path().join(n).display());
        run("sqlite", [sqlite("kr.db"), sqlite("id.db")]).await;
        if let Ok(base) = std::env::var("DATABASE_URL") {
            let a = coconnect::store::testdb::fresh_postgres(&base).await.unwrap();
            let b = coconnect::store::testdb::fresh_postgres(&base).await.unwrap();
            run("postgres", [a, b]).await;
        }
    });
}
